kind=$1
rm -f /tmp/perfp/ready
python benchmarks/results/stream_probes/perf/run.py $kind > /tmp/perfp/$kind.out 2>/dev/null &
pid=$!
while [ ! -f /tmp/perfp/ready ]; do sleep 0.2; done
sleep 0.3
perf record -F 499 -g -p $pid -o /tmp/perfp/$kind.data -- sleep 8 2> /tmp/perfp/$kind.perf.err
wait $pid
cat /tmp/perfp/$kind.out
