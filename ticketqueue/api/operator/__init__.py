"""The operator API: queues made, read, tuned, opened and closed by another program (a ticketing
backend at match publish, an operator's tooling) with an API key or a staff member's token.

Every change is audited as the admin's are (``ticketqueue.operations``), and every request
reaches only its operator's queues (``ticketqueue.tenancy``). docs/api.md describes it.
"""
