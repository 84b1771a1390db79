"""Chain edge: compiled contract artifacts, web3 clients, deployment."""
