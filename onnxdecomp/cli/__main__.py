from onnxdecomp.cli import main

main()
