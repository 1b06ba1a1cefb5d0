// Returns how many invocations the Invocation History extension holds for this execution environment (the newest
// `max_records`, oldest first), this one included, and this one's record.

// The construct writes the port the extension listens on; 1203 is the extension's default.
const HISTORY_URL = `http://127.0.0.1:${process.env.INVOCATION_HISTORY_EXTENSION_HTTP_PORT ?? "1203"}/invocations`;

export const handler = async (event, context) => {
  // requestId + waitMs: the extension answers once it has recorded this invocation (at most 1 s from now).
  const query = new URLSearchParams({ requestId: context.awsRequestId, waitMs: "1000" });
  const response = await fetch(`${HISTORY_URL}?${query}`, { signal: AbortSignal.timeout(2000) });
  if (!response.ok) throw new Error(`invocation history: HTTP ${response.status}`);
  const { invocations } = await response.json();
  return { recorded: invocations.length, newest: invocations.at(-1) ?? null };
};
