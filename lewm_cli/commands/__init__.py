"""The subcommands of `lewm`, one module each: HELP, add_arguments(parser) and run(args).

They sit above every package because each wires parts of several together (the probe command picks a backend in
export/ and hands it to the probes in lewm/). A module imports heavy libraries (torch, onnxruntime, pygame) only
inside run(), so building the parser stays fast and torch-free."""
