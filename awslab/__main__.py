from awslab.cli import main

main()
