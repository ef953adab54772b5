from tokengate.cli import main

main()
