"""The teacher HTTP service (`tripost serve-teacher`, `python -m tripost.serve`):
server.py serves, command.py holds the command's options and runs them."""

from tripost.serve.server import Faults, RunningServer, TeacherService, parse_fail_codes, start_server

__all__ = ["Faults", "RunningServer", "TeacherService", "parse_fail_codes", "start_server"]
