from nnpipe.cli import main

main()
