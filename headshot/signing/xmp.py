"""IPTC XMP `Iptc4xmpExt:DigitalSourceType`: the AI disclosure platforms read without C2PA."""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from PIL import Image

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
# Digital source types that mean "made (or partly made) by a generative model".
AI_SOURCE_TYPES = {
    TRAINED_ALGORITHMIC_MEDIA,
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia",
    "http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicMedia",
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeSynthetic",
}
_XMP_KEYS = ("xmp", "XML:com.adobe.xmp")
_SOURCE_TYPE = re.compile(r"Iptc4xmpExt:DigitalSourceType(?:\s*=\s*[\"']([^\"']+)[\"']|\s*>\s*([^<\s]+)\s*<)")


def xmp_packet(digital_source_type: str = TRAINED_ALGORITHMIC_MEDIA, software: str | None = None) -> bytes:
    """A minimal XMP packet declaring the digital source type (and the creating tool)."""
    tool = f"<xmp:CreatorTool>{escape(software)}</xmp:CreatorTool>" if software else ""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about=""'
        ' xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        ' xmlns:xmp="http://ns.adobe.com/xap/1.0/">'
        f"<Iptc4xmpExt:DigitalSourceType>{escape(digital_source_type)}</Iptc4xmpExt:DigitalSourceType>"
        f"{tool}"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def save_options(image_format: str, packet: bytes) -> dict[str, object]:
    """Pillow save() options that embed `packet` in a JPEG, PNG or WebP file."""
    if image_format == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", packet.decode("utf-8"))
        return {"pnginfo": info}
    return {"xmp": packet}


def read_digital_source_type(image: Image.Image) -> str | None:
    """The IPTC digital source type in the image's XMP, if any."""
    for key in _XMP_KEYS:
        packet = image.info.get(key)
        if not packet:
            continue
        text = packet.decode("utf-8", "replace") if isinstance(packet, bytes) else str(packet)
        match = _SOURCE_TYPE.search(text)
        if match:
            return match.group(1) or match.group(2)
    return None
