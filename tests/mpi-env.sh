# Sourced by mpi-run.sh (and set by meson for singleton runs): what Open
# MPI needs to run on one machine inside a container, as root.
#  - run as root: both variables are needed (Open MPI 4);
#  - shared memory without cross-memory attach (CMA needs ptrace
#    permission that containers usually deny: "vader single copy");
#  - no network transport between ranks: shared memory and self only, and
#    the runtime's out-of-band wiring on the loopback interface.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_oob_tcp_if_include=lo
export OMPI_MCA_rmaps_base_oversubscribe=1
