"""Chain sync: historical backfill (`eth_getLogs` ranges) and the realtime head follower."""
