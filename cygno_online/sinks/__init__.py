"""Sinks: where metrics go besides the live viewers.

* :mod:`.influx` - :class:`~cygno_online.sinks.influx.InfluxSink`, the durable
  InfluxDB writer (disk spool, sender thread, quarantine);
* :mod:`.lineprotocol` - line protocol encoding and the field type registry;
* :mod:`.spool` - the segmented on-disk spool with CRC records and checkpoint;
* :mod:`.senders` - v2 (influxdb-client, synchronous) and v1 (urllib) writers;
* :mod:`.testservers` - real servers on loopback for tests and benchmarks.
"""
