package pg

// LockKey exposes the migration lock key so tests can hold the lock.
var LockKey = lockKey
