"""The teacher HTTP service (`tripost serve-teacher`); see server.py."""

from tripost.serve.server import Faults, RunningServer, TeacherService, parse_fail_codes, start_server

__all__ = ["Faults", "RunningServer", "TeacherService", "parse_fail_codes", "start_server"]
