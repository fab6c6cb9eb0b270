from player_sessions_local.gateway.serve import main

main()
