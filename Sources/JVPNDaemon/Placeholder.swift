import JVPNCore
