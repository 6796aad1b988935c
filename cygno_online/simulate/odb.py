"""The simulated ODB written into the begin/end-of-run events: a small
subset of the real LIME ODB (/work/shared/data/odb/lime_lngs_run42901_odb.json)
with the same paths, names and history formulas, plus a ``/Simulation``
directory with the layout and camera shapes."""

from __future__ import annotations

import time
from typing import Any

from cygno_online.simulate.layouts import Layout
from cygno_online.simulate.slowcontrol import (
    EVENTID_CAMERA,
    EVENTID_CATHODE,
    EVENTID_ENVIRONMENT,
    EVENTID_HV,
    EVENTID_TRIGGER,
    EVENTID_TRIGGER_MODULE,
    HV_NAMES,
    INPUT_NAMES,
    PERIODS_S,
)

#: /History/Display formulas of lime.md (variable -> (label, formula))
ENVIRONMENT_FORMULAS = {
    "Temperature": (
        ["Environment:P1UIn1", "Environment:P0IIn0"],
        ["-22.7*x+82.3", "(x-4)/16*200-50"],
        ["Atm. Temperature [deg]", "Gas Temperature [C]"],
    ),
    "Pressure": (
        ["Environment:P0IIn5", "Environment:P0IIn3"],
        ["(x-4)/16*1.6*1.005454", "(x-4)/16*1.6*1.007618"],
        ["LIME Pressure (ext.) [bar(a)]", "Atm. Pressure [bar(a)]"],
    ),
    "Room Humidity": (["Environment:P1UIn5"], ["0.0375*x*1000-37.7"], ["RH [%]"]),
    "Mixture Density": (
        ["Environment:P3IIn5", "Environment:P3IIn6", "Environment:P3IIn7"],
        [
            "-295+(x-4)*(378.15-233.15)/(20-4)+233.15",
            "(x-4)*(10-0)/(20-4)+0",
            "(x-4)*(11.5-0)/(20-4)+0",
        ],
        ["Gas Temperature [K-295]", "Gas Density [g/l]", "Gas Density  at 0 C[g/l]"],
    ),
}


def _ctime(t: float) -> str:
    return time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(t))


def _common(event_id: int, period_ms: int, frontend: str) -> dict[str, Any]:
    return {
        "Event ID": event_id,
        "Trigger mask": 0,
        "Buffer": "SYSTEM",
        "Period": period_ms,
        "Enabled": True,
        "Format": "MIDAS",
        "Frontend name": frontend,
    }


def build_odb(
    layout: Layout,
    *,
    run: int,
    start_time: float,
    pedestal: bool,
    exposure_s: float,
    pmt: bool,
    seed: int,
    detector_seed: int,
    description: str | None = None,
    stop_time: float | None = None,
    events_sent: dict[int, int] | None = None,
) -> dict[str, Any]:
    """The ODB of a simulated run at begin-of-run (``stop_time`` None) or at
    end-of-run (``stop_time`` and ``events_sent`` per event id given)."""
    if description is None:
        description = (
            "S000:PED:simulated pedestal, HV off" if pedestal else "S003:DATA:Fe, simulated"
        )
    at_eor = stop_time is not None
    sent = events_sent or {}
    elapsed = (stop_time - start_time) if at_eor else 0.0

    def stats(eid: int) -> dict[str, Any]:
        n = sent.get(eid, 0)
        return {
            "Events sent": n,
            "Events per sec.": round(n / elapsed, 4) if elapsed > 0 else 0.0,
        }

    hv_on = not pedestal
    env_formulas = {
        name: {"Variables": v, "Formula": f, "Label": lab}
        for name, (v, f, lab) in ENVIRONMENT_FORMULAS.items()
    }
    return {
        "Experiment": {
            "Name": layout.experiment,
            "Run Parameters": {"Run description": description},
        },
        "Runinfo": {
            # as in real dumps: the BOR is written during the start
            # transition, the EOR during the stop transition of a running run
            "State": 3 if at_eor else 1,
            "Online Mode": 1,
            "Run number": run,
            "Transition in progress": 2 if at_eor else 1,
            "Start time": _ctime(start_time),
            "Start time binary": int(start_time),
            "Stop time": _ctime(stop_time) if at_eor else _ctime(start_time),
            "Stop time binary": int(stop_time) if at_eor else 0,
        },
        "Configurations": {
            "FreeRunning": False,
            "TriggerMode": 0,
            "MaxEvents": -1,
            "Pedestal": pedestal,
            "Exposure": exposure_s,
            "Number of Digitizers": len(layout.boards) if pmt else 0,
            "DigitizerSamples": [b.nsamples for b in layout.boards],
            "pmt_acquisition": pmt,
            "run_type": 1 if pedestal else 0,
        },
        "Equipment": {
            "Trigger": {
                "Common": _common(EVENTID_TRIGGER, 100, "cygnus_daq"),
                "Statistics": stats(EVENTID_TRIGGER),
            },
            "HV": {
                "Common": _common(EVENTID_HV, int(PERIODS_S[EVENTID_HV] * 1000), "SC Frontend"),
                "Settings": {"Names": list(HV_NAMES)},
                "Statistics": stats(EVENTID_HV),
            },
            "CATHODE": {
                "Common": _common(
                    EVENTID_CATHODE, int(PERIODS_S[EVENTID_CATHODE] * 1000), "SC Frontend"
                ),
                "Settings": {"Names": "ISEG_HPS", "Enabled": hv_on},
                "Statistics": stats(EVENTID_CATHODE),
            },
            "Environment": {
                "Common": _common(
                    EVENTID_ENVIRONMENT, int(PERIODS_S[EVENTID_ENVIRONMENT] * 1000), "SC Frontend"
                ),
                "Settings": {"Names Input": list(INPUT_NAMES)},
                "Statistics": stats(EVENTID_ENVIRONMENT),
            },
            "CameraStatus": {
                "Common": _common(
                    EVENTID_CAMERA, int(PERIODS_S[EVENTID_CAMERA] * 1000), "cygnus_daq"
                ),
                "Statistics": stats(EVENTID_CAMERA),
            },
            "TriggerModule": {
                "Common": _common(
                    EVENTID_TRIGGER_MODULE,
                    int(PERIODS_S[EVENTID_TRIGGER_MODULE] * 1000),
                    "python_fe",
                ),
                "Statistics": stats(EVENTID_TRIGGER_MODULE),
            },
        },
        "History": {
            "Display": {
                "Environment": env_formulas,
                "HighVoltages": {
                    "GEM Voltage": {
                        "Variables": [f"HV:{n} Measured" for n in HV_NAMES[:7]],
                        "Formula": [""] * 7,
                    },
                    "GEM": {
                        "Variables": [f"HV:{n} Current" for n in HV_NAMES[:7]],
                        "Formula": [""] * 7,
                    },
                },
                "Default": {
                    "Trigger Module Rates": {
                        "Variables": [
                            "TriggerModule:TriggerModuleRate[0]",
                            "TriggerModule:TriggerModuleRate[4]",
                        ],
                        "Formula": ["", "x/1000"],
                        "Label": ["TRG [Hz]", "Unvetoed TRG [Hz]"],
                    }
                },
            }
        },
        "Simulation": {
            "Layout": layout.name,
            "Seed": seed,
            "Detector seed": detector_seed,
            "DGH0 layout": layout.dgh_layout if pmt else "",
            "Cameras": [
                {"Bank": layout.camera_bank(i), "Rows": r, "Cols": c}
                for i, (r, c) in enumerate(layout.camera_shapes)
            ],
        },
    }
