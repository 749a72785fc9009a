#include "cmnl.h"
