"""The PyTorch runner of the RFUAV Model Service.

Run as ``python -m rfuav_torch <command>`` with the request as one JSON line on stdin; events
come back as newline-delimited JSON on stdout (see events.py). The service spawns one runner
process per task. The commands are the COMMANDS table in __main__.py; each command's module
declares its request as a dataclass (``REQUEST``, see requests.py) and runs it (``run``).
"""
