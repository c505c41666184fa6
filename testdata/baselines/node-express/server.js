// The Node baseline on express: the same job as ../node-http/server.js (see ../README.md),
// written as a team using express would: express.json() parses the body, an async route
// does the lookup and the awaited JetStream publishes, an error middleware answers 503.
//
//   node server.js --listen 127.0.0.1:8083 --redis-url redis://127.0.0.1:6379 \
//     --nats-url nats://127.0.0.1:4222 --prefix bl --stream SWITCHBOARD_EVENTS
import express from 'express'
import crypto from 'node:crypto'
import { createClient } from 'redis'
import { connect } from 'nats'

const cfg = options({
  listen: '127.0.0.1:8083',
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

const nc = await connect({ servers: cfg['nats-url'], name: 'baseline-node-express', maxReconnectAttempts: -1 })
const js = nc.jetstream()
const stream = await ensureStream(await nc.jetstreamManager(), cfg.stream)

const app = express()
app.disable('x-powered-by')
app.disable('etag')
app.use(express.json({
  limit: maxBody,
  type: () => true, // whatever the content type, as the other targets do
  verify: (req, res, buf) => { req.rawBody = buf },
}))

app.all('/{*path}', async (req, res) => {
  const selector = `user_id:${req.body?.from_user_id}`
  const members = await redis.sMembers(`${cfg.prefix}:sel:${selector}`)
  if (members.length > 0) await publish(req.rawBody, req.body, selector, members)
  res.status(201).set('x-handled', 'yes').type('text/plain').send('Webhook received')
})

app.use((err, req, res, next) => {
  if (err.type === 'entity.too.large') return res.status(413).type('text/plain').send('body too large')
  if (err.type === 'entity.parse.failed') return res.status(400).type('text/plain').send('body is not JSON')
  console.error('unavailable:', err.message)
  res.status(503).set('retry-after', '1').type('text/plain').send('unavailable')
})

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
const server = app.listen(port, host, () => {
  console.log(`baseline-node-express listening on ${cfg.listen}, pid ${process.pid}, publishing to stream ${stream}`)
})
server.keepAliveTimeout = 120_000
server.headersTimeout = 121_000

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
