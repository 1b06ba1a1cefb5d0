-- Cold starts per hour (UTC): invocations that were their environment's first, by the hour they began.
SELECT date_trunc('hour', from_iso8601_timestamp(record.invocatedAt)) AS hour_start,
       count(*) AS cold_starts
FROM invocation_history
WHERE type = 'invocation' AND record.coldStart
GROUP BY 1
ORDER BY 1
