"""tripost: teach small language models to correct themselves (TriPosT).

Data flows one way (DESIGN.md):
tasks -> student -> teacher -> log -> buffer -> trainer -> eval -> report.
"""

__version__ = "0.1.0"
