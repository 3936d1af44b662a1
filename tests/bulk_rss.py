"""
Run ``vicket`` with the arguments given, then print its peak memory.

``python tests/bulk_rss.py import FILE ...`` prints ``PEAK_RSS_KIB=N`` as
its last line of standard output; the exit status is the command's.
"""

from __future__ import annotations

import resource
import sys

from vicket_async._cli import main

if __name__ == "__main__":
    status = main(sys.argv[1:])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.stdout.write(f"PEAK_RSS_KIB={peak}\n")
    sys.exit(status)
