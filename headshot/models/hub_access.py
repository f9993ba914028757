"""Can a base model named by hub id be had on this machine: cached, or fetchable now?

`headshot run` asks before any stage writes (a run that rebuilt a subject's dataset and only
then found the model could not be downloaded left the old LoRA beside a dataset it was not
trained on). The loader asks the same question when a download fails. The answer a person
needs differs by cause, so the hub's failures are told apart: no network (or HF_HUB_OFFLINE
set), a gated repository that needs a login and its licence accepted, a repository that does
not exist, and anything else by its own words.
"""

from __future__ import annotations

import os

from headshot.errors import HeadshotError
from headshot.models.model_spec import BaseModelSpec, check_base_model, missing_model_error

HUB_URL = "https://huggingface.co"


def check_model_available(spec: BaseModelSpec, *, allow_pickle: bool = False) -> None:
    """Raise HeadshotError unless the model is a local file/folder, cached, or on the hub for us.

    Asks the hub about access (a few hundred bytes), never downloads weights.
    """
    if check_base_model(spec, allow_pickle=allow_pickle) is not None:
        return  # a local file or folder
    if is_cached(spec):
        return
    if hub_offline():
        raise unavailable_error(spec, None)
    from huggingface_hub import auth_check

    try:
        auth_check(spec.source)
    except Exception as exc:  # the hub's answer, classified below
        raise unavailable_error(spec, exc) from None


def is_cached(spec: BaseModelSpec) -> bool:
    """The hub id's model_index.json is in the local Hugging Face cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(spec.source, "model_index.json", revision=spec.revision)
    return isinstance(found, str)


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set (read now: huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_cache() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE


def unavailable_error(spec: BaseModelSpec, exc: BaseException | None) -> HeadshotError:
    """The not-found error for a hub id, saying which of the causes it is (exc: the hub's
    failure, or None when HF_HUB_OFFLINE kept us from asking)."""
    return missing_model_error(spec, describe_hub_failure(spec, exc))


def describe_hub_failure(spec: BaseModelSpec, exc: BaseException | None) -> str:
    from huggingface_hub.errors import (
        GatedRepoError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo, cache = spec.source, hub_cache()
    cause = _hub_cause(exc)
    not_cached = f"'{repo}' is not in the Hugging Face cache ({cache})"
    if cause is None or isinstance(cause, OfflineModeIsEnabled):
        return (
            f"{not_cached} and HF_HUB_OFFLINE is set, so the hub was not asked; unset it, or "
            f"download the model where there is network (`hf download {repo}`) into this cache"
        )
    if isinstance(cause, GatedRepoError):  # before RepositoryNotFoundError: it is one
        return (
            f"the hub repository '{repo}' is gated: log in (`hf auth login`, or set HF_TOKEN) with "
            f"an account that has accepted its licence at {HUB_URL}/{repo}"
        )
    if isinstance(cause, RevisionNotFoundError):
        return f"the hub repository '{repo}' has no revision '{spec.revision}'"
    if isinstance(cause, RepositoryNotFoundError):
        return (
            f"no repository '{repo}' on the Hugging Face hub (check the name; a private one needs "
            "a login with access)"
        )
    if _is_network_error(cause):
        return (
            f"{not_cached} and the hub cannot be reached (no network: {type(cause).__name__}: "
            f"{_first_sentence(str(cause))}); download it where there is network (`hf download {repo}`)"
        )
    return f"{not_cached}; the hub said {type(cause).__name__}: {_first_sentence(str(cause))}"


def _hub_cause(exc: BaseException | None) -> BaseException | None:
    """The most telling exception in the chain: diffusers wraps the hub's own errors."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    seen, current, found = set(), exc, exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (HfHubHTTPError, OfflineModeIsEnabled)) or _is_network_error(current):
            return current
        current = current.__cause__ or current.__context__
    return found


def _is_network_error(exc: BaseException) -> bool:
    """A connection that could not be made (DNS, refused, timed out): the httpx family
    huggingface_hub uses, or the OS's own."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"ConnectError", "ConnectTimeout", "TimeoutException", "NetworkError"})


def _first_sentence(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first.split(" (")[0][:240]
