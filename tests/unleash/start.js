// Starts Unleash (the npm package unleash-server, installed by .ci/run into
// target/unleash) for tests/flags_unleash.rs: PostgreSQL on PGPORT, HTTP on PORT,
// no authentication (the test is the only client, on loopback).
const unleash = require('unleash-server');
unleash
  .start({
    db: {
      host: '127.0.0.1',
      port: Number(process.env.PGPORT),
      user: 'unleash',
      password: '',
      database: 'unleash',
      ssl: false,
    },
    server: { port: Number(process.env.PORT) },
    authentication: { type: 'none', createAdminUser: false },
    logLevel: 'error',
  })
  .then(() => console.log('unleash started'));
