export default async function getEventSelector({ credentials }) {
  throw new Error(`no account for token ${credentials.accessToken}`)
}
