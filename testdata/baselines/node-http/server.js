// The Node baseline on bare node:http: the same job as cmd/baseline-go (see ../README.md),
// the strongest thing a team would write by hand: one process, keep-alive, node-redis and
// the nats client, every JetStream publish awaited.
//
//   node server.js --listen 127.0.0.1:8082 --redis-url redis://127.0.0.1:6379 \
//     --nats-url nats://127.0.0.1:4222 --prefix bl --stream SWITCHBOARD_EVENTS
import http from 'node:http'
import crypto from 'node:crypto'
import { createClient } from 'redis'
import { connect } from 'nats'

const cfg = options({
  listen: '127.0.0.1:8082',
  'redis-url': 'redis://127.0.0.1:6379',
  'nats-url': 'nats://127.0.0.1:4222',
  prefix: 'bl',
  stream: 'SWITCHBOARD_EVENTS',
  integration: 'load',
  webhook: 'webhook-key',
  'max-body': String(1 << 20),
  'publish-timeout': '5000',
})
const maxBody = Number(cfg['max-body'])
const timeout = Number(cfg['publish-timeout'])

const redis = createClient({ url: cfg['redis-url'] })
redis.on('error', (err) => console.error('redis:', err.message))
await redis.connect()

const nc = await connect({ servers: cfg['nats-url'], name: 'baseline-node-http', maxReconnectAttempts: -1 })
const js = nc.jetstream()
const stream = await ensureStream(await nc.jetstreamManager(), cfg.stream)

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error('unavailable:', err.message)
    if (!res.headersSent) res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' })
    res.end('unavailable')
  })
})
server.keepAliveTimeout = 120_000
server.headersTimeout = 121_000

async function handle(req, res) {
  const chunks = []
  let size = 0
  for await (const chunk of req) {
    size += chunk.length
    if (size > maxBody) {
      res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' })
      res.end('body too large')
      return
    }
    chunks.push(chunk)
  }
  const raw = Buffer.concat(chunks)
  let data
  try {
    data = JSON.parse(raw)
  } catch {
    res.writeHead(400, { 'content-type': 'text/plain' })
    res.end('body is not JSON')
    return
  }
  const selector = `user_id:${data?.from_user_id}`
  const members = await redis.sMembers(`${cfg.prefix}:sel:${selector}`)
  if (members.length > 0) await publish(raw, data, selector, members)
  res.writeHead(201, { 'content-type': 'text/plain; charset=utf-8', 'x-handled': 'yes' })
  res.end('Webhook received')
}

// publish sends one envelope per route and resolves when JetStream acknowledged them all.
function publish(raw, data, selector, members) {
  const digest = crypto.createHash('sha256').update(raw).digest('hex')
  const timestamp = new Date().toISOString()
  return Promise.all(members.map((member) => {
    const rt = JSON.parse(member)
    const envelope = {
      id: `evt_${crypto.randomBytes(8).toString('hex')}`,
      organizationId: rt.o,
      source: 'apps',
      resource: 'app',
      resourceId: cfg.integration,
      eventName: 'event_received',
      timestamp,
      payload: data,
      metadata: {
        connectionId: rt.c, subscriptionId: rt.s, eventKey: rt.e,
        globalWebhookKey: cfg.webhook, selector, channel: null, eventType: null,
      },
    }
    const subject = `events.${rt.o}.apps.app.event_received.${cfg.integration}.${cfg.webhook}.${rt.e}`
    const msgID = crypto.createHash('sha256').update(digest + rt.s).digest('hex')
    return js.publish(subject, Buffer.from(JSON.stringify(envelope)), { msgID, timeout })
  }))
}

// ensureStream returns the stream to publish to: the named one, else a new one on events.>,
// else whichever stream already captures events.>.
async function ensureStream(jsm, name) {
  try {
    await jsm.streams.info(name)
    return name
  } catch (err) {
    if (err.code !== '404' && !/not found/i.test(err.message)) throw err
  }
  try {
    await jsm.streams.add({
      name, subjects: ['events.>'], storage: 'file', retention: 'limits', discard: 'old',
      max_age: 7 * 24 * 3600 * 1e9, duplicate_window: 120 * 1e9,
    })
    return name
  } catch (err) {
    return await jsm.streams.find('events.>').catch(() => { throw err })
  }
}

function options(defaults) {
  const out = { ...defaults }
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i++) {
    const m = /^--?([a-z-]+)(?:=(.*))?$/.exec(argv[i])
    if (!m || !(m[1] in defaults)) throw new Error(`unknown argument ${argv[i]}; known: ${Object.keys(defaults).join(', ')}`)
    out[m[1]] = m[2] ?? argv[++i]
  }
  return out
}

const [host, port] = splitHostPort(cfg.listen)
server.listen(port, host, () => {
  console.log(`baseline-node-http listening on ${cfg.listen}, pid ${process.pid}, publishing to stream ${stream}`)
})

function splitHostPort(s) {
  const i = s.lastIndexOf(':')
  return [s.slice(0, i).replace(/^\[|\]$/g, '') || '0.0.0.0', Number(s.slice(i + 1))]
}

// Stop on a signal: stop accepting, let requests in flight finish, drain NATS, quit Redis;
// give up after 5 s, or at once on a second signal.
let stopping = false
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (stopping) process.exit(1)
    stopping = true
    setTimeout(() => process.exit(1), 5000).unref()
    server.close(() => {
      Promise.allSettled([nc.drain(), redis.quit()]).then(() => process.exit(0))
    })
    server.closeIdleConnections()
  })
}
