from segcli.cli.root import main

main()
