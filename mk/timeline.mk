# History across environments (issue 13; docs/history-queries.md): several execution environments at once on the
# local Lambda (the RIE's managed-instances mode) with the S3 export on, to moto's S3 server on loopback; then the
# timeline of what they did (build/timeline/timeline.png and .html) and the named queries' answers (DuckDB).
.PHONY: timeline-demo

timeline-demo: venv rie build ## several environments at once, exported to a local S3, drawn as a timeline in build/timeline/
	$(PY) -m tools.timeline_demo
