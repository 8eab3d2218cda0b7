"""awslab's home on this machine, below every other room: the state directory and its files
(``state``), the SDK's model cache (``sdkdata``) and how a process sits with Python's collector
(``process``). Both the client side (commands, engine) and the local AWS (server, engines) use
them; they import nothing of awslab but ``errors``."""
