export default async function handle({ data }) {
  return {
    events: [{ selector: `${data.kind}:${data.user}`, payload: data }],
    response: { status: 202, data: 'accepted' },
  }
}
