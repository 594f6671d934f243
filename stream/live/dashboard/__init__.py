"""``driftline dashboard``: a web page over the output topics of one consumer group.

``state`` keeps what the page shows, bounded and pure; ``follow`` reads the topics into it;
``server`` serves the page and ``/api/state``; ``command`` is the command line.
"""
