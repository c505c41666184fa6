// ?mode=throw throws a message holding the integration's secret (which must not reach the
// sender or the log), ?mode=loop never returns, anything else routes data.user.
export default async function handle({ query, data, parameters }) {
  if (query.mode === 'throw') {
    throw new Error(`cannot verify with ${parameters.signingSecret}`)
  }
  if (query.mode === 'loop') {
    for (;;) {}
  }
  return {
    events: [{ selector: `user:${data.user}`, payload: data }],
    response: { status: 202, headers: { 'content-type': 'application/json' }, data: { ok: true } },
  }
}
