print("jvpn")
