"""The engine process: sequencer, durable journal, snapshots, and the edges around the pure
matching engine (`backend.matching`) — event persistence, feeds, and the client the API uses."""
