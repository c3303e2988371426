// Only the header matters: it declares LLVMFuzzerRunDriver for the Swift targets.
#include "CFuzzDriver.h"
