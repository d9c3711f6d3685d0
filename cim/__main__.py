from cim.cli.main import main

main()
