"""Relevance judge (issue 4): protocol, backends, judging job, calibration and engagement audit."""
