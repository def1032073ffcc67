// mongo-init.js -- run once per `docker compose up` by the mongo-init service (mongosh): make the
// single node the replica set rs0, wait until it is primary, and create or update the `pixflow`
// user (readWrite on database pixflow). Every step is a no-op when already done.

const admin = db.getSiblingDB('admin');
admin.auth(process.env.MONGO_ROOT_USER, process.env.MONGO_ROOT_PASSWORD);

try {
    rs.status();
} catch (e) {
    // NotYetInitialized (94): a fresh volume. The member's name is the service name, which
    // every container on the compose network resolves.
    if (e.code !== 94) throw e;
    rs.initiate({ _id: 'rs0', members: [{ _id: 0, host: 'mongo:27017' }] });
}

let primary = false;
for (let i = 0; i < 60 && !primary; i++) {
    primary = admin.runCommand({ hello: 1 }).isWritablePrimary === true;
    if (!primary) sleep(1000);
}
if (!primary) throw new Error('mongo-init: no primary after 60 s');

// The password lives in .env; updating it here keeps .env the one place it is set.
const app = db.getSiblingDB('pixflow');
const roles = [{ role: 'readWrite', db: 'pixflow' }];
if (app.getUser('pixflow') === null) {
    app.createUser({ user: 'pixflow', pwd: process.env.MONGO_PIXFLOW_PASSWORD, roles: roles });
    print('mongo-init: user pixflow created');
} else {
    app.updateUser('pixflow', { pwd: process.env.MONGO_PIXFLOW_PASSWORD, roles: roles });
    print('mongo-init: user pixflow updated');
}
print('mongo-init: replica set rs0 ready');
