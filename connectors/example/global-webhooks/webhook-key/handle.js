export default async function handle({ query, data, headers, parameters, rawBody }) {
  return {
    events: [{ selector: `user_id:${data.from_user_id}`, payload: data }],
    response: { status: 201, headers: { "x-handled": "yes" }, data: "Webhook received" },
  }
}
