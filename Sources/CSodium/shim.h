#ifndef JVPN_CSODIUM_SHIM_H
#define JVPN_CSODIUM_SHIM_H
#include <sodium.h>
#endif
