-- Errors by type and environment: invocations that did not succeed (status error, failure or timeout),
-- by environment, status and error type (the platform's, e.g. Runtime.Unknown, or the runtime's).
SELECT regexp_extract("$path", '([^/]+)-[0-9]+\.ndjson\.gz$', 1) AS environment_id,
       record.status AS status,
       coalesce(record.errorType, '(none)') AS error_type,
       count(*) AS invocations,
       min(from_iso8601_timestamp(record.invocatedAt)) AS first_at,
       max(from_iso8601_timestamp(record.invocatedAt)) AS last_at
FROM invocation_history
WHERE type = 'invocation' AND record.status IN ('error', 'failure', 'timeout')
GROUP BY 1, 2, 3
ORDER BY invocations DESC, environment_id, status, error_type
