"""The teacher HTTP service (`tripost serve-teacher`, `python -m tripost.serve`):
server.py serves, command.py holds the command's options and runs them;
attempts.py answers a teacher-attempt request without an LLM (the scripted
teacher's seeded sampler); bounds.py is what serve-teacher and serve-student
read and hold (`Limits`)."""

from tripost.serve.bounds import Limits
from tripost.serve.server import Faults, RunningServer, TeacherService, parse_fail_codes, start_server

__all__ = ["Faults", "Limits", "RunningServer", "TeacherService", "parse_fail_codes", "start_server"]
