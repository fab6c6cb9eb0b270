from player_sessions_local.gateway.server import main

main()
