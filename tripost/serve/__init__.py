"""The teacher HTTP service (`tripost serve-teacher`, `python -m tripost.serve`):
server.py serves (the HTTP routes), teacher_service.py answers, faults.py
holds the fault-injection options, stats.py the /stats counters, batches.py
the Batch APIs, command.py the command's options and their run; attempts.py
answers a teacher-attempt request without an LLM (the scripted teacher's
seeded sampler). serve-student: student_server.py (the routes and the
command), student_service.py, student_requests.py, student_model.py,
student_adapters.py. Shared by both: bounds.py, what they read and hold
(`Limits`), and running.py (the token, a server in a background thread)."""

from tripost.serve.bounds import Limits
from tripost.serve.faults import Faults, parse_fail_codes
from tripost.serve.running import RunningServer
from tripost.serve.server import start_server
from tripost.serve.teacher_service import TeacherService

__all__ = ["Faults", "Limits", "RunningServer", "TeacherService", "parse_fail_codes", "start_server"]
