#include "ctun.h"
