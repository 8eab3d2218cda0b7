"""awslab's home on this machine, below every other room: the state directory and its files
(``state``) and the SDK's model cache (``sdkdata``). Both the client side (commands, engine) and
the local AWS (server, engines) use them; they import nothing of awslab but ``errors``."""
