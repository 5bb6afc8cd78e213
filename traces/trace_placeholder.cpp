// Removed once traces/ has its real sources.
namespace rackep {}
