-- Invocations per environment: how many, how they ended (status from telemetry; NULL without it), and
-- the first and last time one began. The environment is named by the object's key.
SELECT regexp_extract("$path", '([^/]+)-[0-9]+\.ndjson\.gz$', 1) AS environment_id,
       count(*) AS invocations,
       count_if(record.coldStart) AS cold_starts,
       count_if(record.status = 'success') AS succeeded,
       count_if(record.status IN ('error', 'failure', 'timeout')) AS failed,
       count_if(record.status IS NULL) AS status_unknown,
       min(from_iso8601_timestamp(record.invocatedAt)) AS first_invocation_at,
       max(from_iso8601_timestamp(record.invocatedAt)) AS last_invocation_at
FROM invocation_history
WHERE type = 'invocation'
GROUP BY 1
ORDER BY first_invocation_at, environment_id
