"""Prompt templates, shipped inside the wheel as `tripost._prompts` (see setup.py)."""
