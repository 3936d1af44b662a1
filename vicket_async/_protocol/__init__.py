"""
What the Vicket protocol says, in code that performs no I/O.

Everything here is plain functions and data: URLs and headers, the error
envelope, answer checks, the multipart layout and the JSON codec. The aiohttp
layer in ``vicket_async._transport`` only sends what this package builds and
hands back what it received.
"""
