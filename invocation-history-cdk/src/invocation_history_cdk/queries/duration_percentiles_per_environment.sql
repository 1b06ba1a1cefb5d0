-- Duration per environment: p50 and p99 of the invocations' durations (telemetry's durationMs; those
-- without one are left out), with their number and the longest.
SELECT regexp_extract("$path", '([^/]+)-[0-9]+\.ndjson\.gz$', 1) AS environment_id,
       count(*) AS invocations,
       approx_percentile(record.durationMs, 0.5) AS p50_ms,
       approx_percentile(record.durationMs, 0.99) AS p99_ms,
       max(record.durationMs) AS max_ms
FROM invocation_history
WHERE type = 'invocation' AND record.durationMs IS NOT NULL
GROUP BY 1
ORDER BY environment_id
