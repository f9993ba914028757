"""`headshot serve`: the manifest repository answering the C2PA Soft Binding Resolution API, and a page.

A layer on top of signing: the routes only read the repository (headshot/signing/store.py)
and call verify's functions. The server keeps no state of its own, so several processes
or machines can serve one database.
"""
