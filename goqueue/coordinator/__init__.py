"""Coordinators: state machines over internal compacted topics, on one shared runtime."""
