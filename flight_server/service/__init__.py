"""The Flight service: decodes calls, finds the caller's session, dispatches to one handler per command."""
