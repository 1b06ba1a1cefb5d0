-- Environments: when each started and shut down, how long it lived, why it ended, and the invocations
-- it served (the shutdown line's count) and that are in the export. An environment whose first or last
-- object is missing (still running, or lost) has NULL for what that object would have said.
WITH starts AS (
    SELECT environmentId AS environment_id, functionName AS function_name, initType AS init_type,
           from_iso8601_timestamp("at") AS started_at
    FROM invocation_history
    WHERE type = 'environment' AND event = 'start'
), ends AS (
    SELECT environmentId AS environment_id, from_iso8601_timestamp("at") AS ended_at, reason, served
    FROM invocation_history
    WHERE type = 'environment' AND event = 'shutdown'
), exported AS (
    SELECT regexp_extract("$path", '([^/]+)-[0-9]+\.ndjson\.gz$', 1) AS environment_id, count(*) AS invocations
    FROM invocation_history
    WHERE type = 'invocation'
    GROUP BY 1
), ids AS (
    SELECT environment_id FROM starts
    UNION SELECT environment_id FROM ends
    UNION SELECT environment_id FROM exported
)
SELECT ids.environment_id,
       starts.function_name,
       starts.init_type,
       starts.started_at,
       ends.ended_at,
       date_diff('millisecond', starts.started_at, ends.ended_at) AS lifetime_ms,
       ends.reason AS shutdown_reason,
       ends.served,
       coalesce(exported.invocations, 0) AS invocations_exported
FROM ids
LEFT JOIN starts ON starts.environment_id = ids.environment_id
LEFT JOIN ends ON ends.environment_id = ids.environment_id
LEFT JOIN exported ON exported.environment_id = ids.environment_id
ORDER BY starts.started_at, ids.environment_id
